"""Domain `orders`: the order service's products (order placed, order status changed)."""
