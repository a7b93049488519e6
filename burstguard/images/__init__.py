"""Container images built without a registry or a container engine (see ``oci``)."""
