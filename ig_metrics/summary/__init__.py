"""A run's metrics summed up for people: rows per series (rates, totals,
percentiles) sorted and cut to the top N, and the node summary the cluster CLI
reads from each agent."""
