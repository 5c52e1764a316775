"""What every sink (PostgreSQL, any common-sql database, MongoDB, files) promises, written once."""
