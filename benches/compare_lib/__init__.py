"""The parts of benches/compare that are not its command line: shell (messages, apt-get),
peers (the peers' libraries and versions), run (one measured or traced run) and report
(medians, tables, latest.md, the chart)."""
