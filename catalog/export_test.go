package catalog

// BoundConnections is boundConnections, for tests.
var BoundConnections = boundConnections
