// var/ is run state, not code: this go.mod keeps the go tool from walking
// into it (see .gitignore).
module memoflow.invalid/var
