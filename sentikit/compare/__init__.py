"""`sentikit compare`: many fits of the three cells, their measurements, and the report."""
