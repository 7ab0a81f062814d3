"""`ebgan-web`: a one-page face editor in the browser, in front of an in-process model or a TF Serving endpoint."""

from ebgan_tf.serving.request_limits import RequestLimits

# The editor's HTTP limits by default (WebOptions, ebgan-web's flags): RequestLimits' own, but a body limit that
# takes a 40-megapixel camera JPEG (--max_pixels), which is 15-35 MB.
DEFAULT_LIMITS = RequestLimits(max_message_bytes=48 * 1024 * 1024)
