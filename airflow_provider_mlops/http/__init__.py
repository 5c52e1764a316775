"""
The HTTP client layers behind :class:`~airflow_provider_mlops.hooks.http.HttpApiHook`.

One module per layer, in the spirit of dlt's ``rest_client`` (client / auth / paginators /
exceptions), and none of them needs Airflow, so each is testable on its own:

- :mod:`.exceptions`: the errors a request ends with;
- :mod:`.paginators`: how the next page is requested;
- :mod:`.auth`: how a request is authenticated: ``requests.auth.AuthBase`` schemes (basic, bearer, API
  key, OAuth2 client credentials); it imports requests, so the hook imports it only when used;
- :mod:`.retry`: which failures are worth another try, and how long to wait;
- :mod:`.redaction`: keeping secrets out of log lines and exception texts.

Nothing heavy is imported here (DAG files import the hook at parse time).
"""
