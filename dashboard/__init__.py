"""The orbench Streamlit dashboard: ``streamlit run dashboard/app.py`` (or ``orbench dashboard``)."""
