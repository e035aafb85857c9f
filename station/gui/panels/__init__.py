"""The panels of the station window, each a thin view over the station session: ports (the
cards), the scan bar, rows and failed units, the lot (partitions and problems), engineer mode and
the log. They hold widgets and what is on screen; the rules live in
:mod:`station.production.session`.

May import: PySide6, station.gui (models, widgets, theme, wording), station.production,
station.partitions (read views). Never the ledger directly.
"""
