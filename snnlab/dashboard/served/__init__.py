"""The file ``snnlab dashboard`` hands to ``panel serve``: :mod:`snnlab.dashboard.served.app` (page ``/app``).

It is a folder of its own so that the served file can be called ``app.py`` (Panel names the page after the file)
while holding no dashboard code (see that module).
"""
