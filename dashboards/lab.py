"""The snnlab lab dashboard: ``panel serve dashboards/lab.py --address 127.0.0.1`` (page ``/lab``; without
``--address`` Panel listens on every interface), or ``snnlab dashboard`` (localhost only, page ``/app``)."""
from snnlab.dashboard import build_app

build_app().servable(title="snnlab lab")
