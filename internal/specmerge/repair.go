package specmerge

import (
	"fmt"
	"strconv"
	"strings"
)

// repairExamples replaces example values whose JSON type contradicts their
// schema: the Mixpanel docs page shows `project_id: your project ID` for a
// number. Such an example fails validation, and a contract test built from it
// would test nothing. A numeric string becomes its number; anything else
// becomes 0 (R2).
func repairExamples(name string, doc map[string]any) []string {
	var notes []string
	schemas := mapOf(mapOf(doc["components"])["schemas"])
	for _, sn := range sortedKeys(schemas) {
		walk(schemas[sn], func(s map[string]any) {
			ex := mapOf(s["example"])
			props := mapOf(s["properties"])
			for _, p := range sortedKeys(props) {
				t := str(mapOf(props[p])["type"])
				v, isStr := ex[p].(string)
				if !isStr || (t != "number" && t != "integer") {
					continue
				}
				var fixed any = 0
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					fixed = f
				}
				ex[p] = fixed
				notes = append(notes, fmt.Sprintf("%s: example %s.%s was the string %q for a %s; now %v (R2)", name, sn, p, v, t, fixed))
			}
		})
	}
	return notes
}
