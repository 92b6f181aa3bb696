VALUE = "locked local"
