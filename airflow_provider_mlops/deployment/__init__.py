"""Deployment targets behind DeployModelOperator (see :mod:`.targets`)."""
