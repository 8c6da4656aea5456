-- MLflow's backend store lives beside the Optuna studies, in its own database.
CREATE DATABASE mlflow;
