"""One module per page; each only lays out widgets, data from dashboard.data and charts from dashboard.charts."""
