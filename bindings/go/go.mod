module github.com/hexz-dev/hexz/bindings/go

go 1.19
