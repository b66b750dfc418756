"""Chat platforms: parsing and verifying what they send, rendering and sending replies."""
