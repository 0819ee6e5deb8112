package mpgdpr

import (
	"strings"

	"github.com/privacykit/mpgdpr/gen"
)

// Region is where a Mixpanel project's data lives (data residency). Each
// region has its own API host; a project is only reachable through its own.
type Region string

// The regions Mixpanel documents.
const (
	RegionUS Region = "us" // https://mixpanel.com/api/app, the default
	RegionEU Region = "eu" // https://eu.mixpanel.com/api/app
	RegionIN Region = "in" // https://in.mixpanel.com/api/app
)

// Regions lists every region, US first.
func Regions() []Region { return []Region{RegionUS, RegionEU, RegionIN} }

// BaseURL returns the region's API base URL, taken from the generated server
// list so that it follows the merged document.
func (r Region) BaseURL() (string, error) {
	switch r {
	case RegionUS:
		return gen.ServerUrlUS, nil
	case RegionEU:
		return gen.ServerUrlEU, nil
	case RegionIN:
		return gen.ServerUrlIndia, nil
	}
	return "", errorf("%w: unknown region %q (want us, eu or in)", ErrInvalidInput, string(r))
}

// ParseRegion reads a region name: us, eu or in (any case; "india" too).
func ParseRegion(s string) (Region, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "us", "":
		return RegionUS, nil
	case "eu":
		return RegionEU, nil
	case "in", "india":
		return RegionIN, nil
	}
	return "", errorf("%w: unknown region %q (want us, eu or in)", ErrInvalidInput, s)
}
