// Package filebackend is the licence backend `file`: a YAML file of token
// hashes (for on-premises installs and demos), configured by the section
// licenses.file and followed while the token service runs.
package filebackend
