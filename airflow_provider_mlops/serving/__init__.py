"""The model server (``python -m airflow_provider_mlops.serve``): see :mod:`.app` and :mod:`.protocol`."""
