"""The experiment dashboard: a web app on the record (`hpoqueue dashboard`) and its static report."""
