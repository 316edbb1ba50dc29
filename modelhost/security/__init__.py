"""Who may call the server and what they may do: access keys, SigV4 verification, identity policies, audit."""
