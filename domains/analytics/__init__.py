"""Consumer-aligned domain `analytics`: faust processors that build products from others."""
