"""Entrypoint: page config, settings, the simulated banner, navigation. Nothing else.

``streamlit run dashboard/app.py`` puts only this folder on ``sys.path``; the
project root is added so ``bench`` and ``dashboard`` import without installing.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import data, ui  # noqa: E402

# A material page_icon would make the browser fetch the favicon from fonts.gstatic.com.
st.set_page_config(page_title="orbench", page_icon="⏱️", layout="wide")
# Also in .streamlit/config.toml, which is only read when started from the project folder.
st.set_option("client.showErrorDetails", "type")
st.set_option("client.toolbarMode", "minimal")

PAGES = [
    st.Page("app_pages/decide.py", title="Decide", icon=":material/rule:", default=True),
    st.Page("app_pages/results.py", title="Results", icon=":material/monitoring:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/load.py", title="Load", icon=":material/speed:"),
    st.Page("app_pages/trends.py", title="Trends", icon=":material/timeline:"),
    st.Page("app_pages/quality.py", title="Quality", icon=":material/fact_check:"),
    st.Page("app_pages/providers.py", title="Providers", icon=":material/verified:"),
    st.Page("app_pages/catalog.py", title="Catalog", icon=":material/menu_book:"),
    st.Page("app_pages/credits.py", title="Credits", icon=":material/account_balance_wallet:"),
    st.Page("app_pages/run.py", title="Run", icon=":material/play_circle:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
]

page = st.navigation(PAGES)
ui.restore_view()  # the shared filters: from the URL on a new session, back into the URL on every run
ui.banner(data.current_settings())
ui.team_header(str(data.current_settings().db_path))  # with --team: pull every <= 10 s into the local cache
ui.refresh_button()
page.run()
ui.warm_once()  # after the first page is out: the next page opens without Altair's and pandas' imports
