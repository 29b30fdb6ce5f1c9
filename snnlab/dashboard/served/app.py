"""The script ``snnlab dashboard`` serves (``panel serve <this file>``; page ``/app``): it only imports the page.

Bokeh runs a served script as a new module per browser session and clears that module's globals when the session
is destroyed, *before* the session's ``on_session_destroyed`` callbacks run. Code defined in the script itself
(a class, a function) would then run without its module's names (``NameError``) and a closed tab's training would
never be stopped. So no dashboard code lives here: :func:`snnlab.dashboard.app.build_app` comes from the imported
package, whose module Bokeh never clears.
"""
if __name__.startswith("bokeh_app"):  # imported as a module (docs, tests): nothing is built
    from snnlab.dashboard.app import build_app

    build_app().servable(title="snnlab lab")
