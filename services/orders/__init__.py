"""Orders: the plans catalogue, customers' orders and their lifecycle, the IP address pools."""
