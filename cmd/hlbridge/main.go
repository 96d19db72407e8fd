// Command hlbridge keeps a WordPress site's users in step with HighLevel.
package main

func main() {}
