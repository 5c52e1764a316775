-- Runs once, when the warehouse volume is created (postgres image's /docker-entrypoint-initdb.d):
-- the demo's source system gets its own database beside the warehouse.
CREATE DATABASE source;
-- The MLflow tracking server's backend store.
CREATE DATABASE mlflow;
