// Package httpbackend is the licence backend `http`: it asks the vendor's
// licence API which channels a customer's API token holds, configured by
// the section licenses.http.
package httpbackend
