"""`ebgan-web`: a one-page face editor in the browser, in front of an in-process model or a TF Serving endpoint."""
