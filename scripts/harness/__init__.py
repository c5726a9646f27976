"""What every script of `scripts/` needs to measure a real Gavel:

processes  a child process that says when it is ready (`gavel serve`, a notary, a video
           server), started, stopped, killed; `free_port`
notaries   notary processes co-signing a server's checkpoints, and a delaying proxy
bidders    verified, registered bidders over REST; lots waited for; keys as base64 seeds
load       a load generator that measures the server: bids signed in advance, client
           processes, the server's CPU time per answered bid
stats      percentiles, means, least-squares slopes
machine    what the figures were measured on, and CPU time of processes and cores
report     JSON output and fixed-width table rows
profiled   a module under cProfile timed by CPU time (BENCH_PROFILE_CLOCK=cpu)
"""
