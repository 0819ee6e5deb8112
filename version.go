package mpgdpr

// Version is this module's release version, without the leading "v" of its
// tag. It is sent in the default User-Agent, "mpgdpr-go/" + Version, so a
// request in Mixpanel's or a proxy's logs names the client that sent it.
const Version = "0.9.0"
