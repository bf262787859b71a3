package facilitator

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's description, served at /api/v1/openapi.json; TestOpenAPI holds it to
// the routes the server registers.
//
//go:embed openapi.json
var openAPI []byte

func handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
