"""Console business rules: each mutation of users, workspaces, members and keys is a function here."""
