"""Chain runtime: gadget protocol, registry, config loading and the streaming runner."""
