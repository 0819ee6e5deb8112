// Package workerdb holds what every reader of the worker's database must
// agree on, in one place: how a database is named (Resolve: "sqlite:PATH" or
// a postgres:// URL, relative SQLite paths taken from the configuration
// file's directory), how a query's placeholders are written for each driver
// (Rebind), how times are stored (FormatTime, ParseTime) and the names of
// the events in the worker's log. The worker writes the database; package
// evidence and the CLI's report read it; both import this package, which
// imports neither.
package workerdb
