"""One module per page; each lays out widgets, data from dashboard.data, charts from dashboard.charts."""
