"""One module per page; each lays out widgets, data from dashboard.data, charts from dashboard.charts."""

__all__: list[str] = []  # page scripts: run by st.navigation, never imported
