// Balancers: see DESIGN.md. Filled in by its issue.
enum BalancersModule {}
