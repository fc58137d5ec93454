"""OPC UA input (asyncua): subscriptions with monitored items, security, reconnect, discovery."""
