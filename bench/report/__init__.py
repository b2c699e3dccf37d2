"""Showing results: bench.report.tables builds every table as text cells; bench.report.terminal
and bench.report.markdown render them. Nothing here measures."""
