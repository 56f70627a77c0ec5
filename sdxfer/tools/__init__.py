"""The command-line tools: one driver (sdxfer.tools.driver) that opens a probe
and its output and follows it; execmon and hidsmon are a probe choice and a
formatter each; `sdxfer` (cli) adds gen, compat, decode, build-free run and
consume."""
