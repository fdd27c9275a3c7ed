"""Rules every app shares and no app owns: the error taxonomy and its envelopes, the API key headers,
compact JSON, strong ETags, and the management API's DRF glue.

`core` imports no other app of the project; every app may import it (docs/architecture.md, the layers).
"""
