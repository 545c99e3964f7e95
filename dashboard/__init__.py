"""The orbench Streamlit dashboard: ``streamlit run dashboard/app.py`` (or ``orbench dashboard``)."""

# The modules the pages use (app.py is the entrypoint, app_pages/ the page scripts).
__all__ = ["catalog_view", "charts", "data", "jobs", "ui"]
