"""Reports: tables, plots, the Pareto front and a plain verdict, merged across machines."""
