"""Search: study files, the space, Optuna samplers and pruners, trials, export."""
