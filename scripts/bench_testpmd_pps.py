"""Median Tx-pps of port 1 from testpmd --stats-period output, in Mpps,
skipping the first two samples (warm-up)."""
import re
import statistics
import sys

text = open(sys.argv[1], errors='replace').read()
samples = [int(m) for m in re.findall(r'NIC statistics for port 1.*?Tx-pps:\s+(\d+)', text, re.S)]
samples = samples[2:] or samples
print(statistics.median(samples) / 1e6 if samples else 0)
