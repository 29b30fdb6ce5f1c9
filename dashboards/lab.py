"""The snnlab lab dashboard: ``panel serve dashboards/lab.py`` (or ``snnlab dashboard``)."""
from snnlab.dashboard import build_app

build_app().servable(title="snnlab lab")
