"""Streamlit-only helpers shared by the pages: the shared Hydra, cards, charts, forms.

Pages stay thin: they read frozen snapshots and task views from the one
``Hydra`` of the process (``shared.get_hydra``) and hand them to these
modules. Nothing here holds an engine lock or touches a router thread.
"""
