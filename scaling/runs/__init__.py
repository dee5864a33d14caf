"""Runs as a table: sweep folders and tracker stores read into one run table (N, D, C, loss) and curves."""
