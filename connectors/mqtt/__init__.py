"""MQTT input (paho-mqtt 2.x): JSON and Sparkplug B payloads from the formation cyclers."""
