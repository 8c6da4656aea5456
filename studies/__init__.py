"""The study files rockopt ships, installed as the package `rockopt.studies` (see pyproject.toml)."""
