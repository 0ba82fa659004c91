"""The analytics processors: one declaration (``PROCESSOR``) per analytics product, each run
as its own worker with ``python -m domains.analytics.processors.<module> worker -l info``."""
