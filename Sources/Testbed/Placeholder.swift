// Testbed: see DESIGN.md. Filled in by its issue.
enum TestbedModule {}
